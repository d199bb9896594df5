package music_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ensemble-bot/ensemble/internal/music"
)

const (
	djRole    = "300000000000000001"
	otherRole = "300000000000000002"
	botVC     = "400000000000000001"
	otherVC   = "400000000000000002"
)

var allActions = []music.Action{
	music.ActionPlay, music.ActionPause, music.ActionResume, music.ActionSkip, music.ActionStop,
	music.ActionQueue, music.ActionNowPlaying, music.ActionVolume, music.ActionLoop, music.ActionShuffle,
	music.ActionRemove, music.ActionMove, music.ActionSeek, music.ActionClear, music.ActionAutoplay,
	music.ActionLeave, music.ActionSettings,
}

// The package comment's table, restated independently of dj.go.
var (
	everyoneActions = "play pause resume queue nowplaying"
	noVoiceActions  = "queue nowplaying settings"
	modAnywhere     = "stop leave"
)

type memberKind struct {
	name  string
	roles []string
	perms uint64
}

var memberKinds = []memberKind{
	{"plain", nil, 0},
	{"other role", []string{otherRole}, 1<<10 | 1<<11}, // view channel, send messages
	{"DJ role", []string{otherRole, djRole}, 0},
	{"Manage Server", nil, music.PermissionManageGuild},
	{"Administrator", nil, music.PermissionAdministrator},
}

type voiceCase struct {
	name        string
	member, bot string
}

var voiceCases = []voiceCase{
	{"same channel", botVC, botVC},
	{"other channel", otherVC, botVC},
	{"not in voice", "", botVC},
	{"bot not connected, member in voice", otherVC, ""},
	{"bot not connected, member not in voice", "", ""},
}

// expect is the oracle: the reason Authorize must give, or nil.
func expect(k memberKind, s music.Settings, v voiceCase, a music.Action) error {
	name := a.String()
	mod := k.perms&(music.PermissionManageGuild|music.PermissionAdministrator) != 0
	isDJ := mod || (s.DJRoleID != "" && strings.Contains(strings.Join(k.roles, " "), s.DJRoleID))
	if !strings.Contains(" "+everyoneActions+" ", " "+name+" ") && !isDJ {
		return music.ErrNotDJ
	}
	if strings.Contains(" "+noVoiceActions+" ", " "+name+" ") ||
		(mod && strings.Contains(" "+modAnywhere+" ", " "+name+" ")) {
		return nil
	}
	switch {
	case v.bot == "" && a == music.ActionPlay && v.member == "":
		return music.ErrNotInVoice
	case v.bot == "" && a == music.ActionPlay:
		return nil
	case v.bot == "":
		return music.ErrBotNotInVoice
	case v.member != v.bot:
		return music.ErrNotInBotChannel
	}
	return nil
}

func TestAuthorizeEveryCombination(t *testing.T) {
	settings := map[string]music.Settings{
		"with DJ role": {DJRoleID: djRole, DefaultVolume: 100},
		"no DJ role":   music.DefaultSettings(),
	}
	for sname, s := range settings {
		for _, k := range memberKinds {
			for _, v := range voiceCases {
				for _, a := range allActions {
					t.Run(fmt.Sprintf("%s/%s/%s/%s", sname, k.name, v.name, a), func(t *testing.T) {
						m := music.Member{RoleIDs: k.roles, Permissions: k.perms, VoiceChannelID: v.member, BotVoiceChannelID: v.bot}
						err := music.Authorize(m, s, a)
						want := expect(k, s, v, a)
						if want == nil {
							checkErr(t, err, nil)
							return
						}
						checkErr(t, err, want)
						checkErr(t, err, music.ErrDenied)
						var d *music.DeniedError
						if !errors.As(err, &d) || d.Action != a || d.Reason != want {
							t.Fatalf("error %#v is not a DeniedError for %v/%v", err, a, want)
						}
					})
				}
			}
		}
	}
}

func TestAuthorizeExamples(t *testing.T) {
	withRole := music.Settings{DJRoleID: djRole, DefaultVolume: 100}
	inVC := music.Member{VoiceChannelID: botVC, BotVoiceChannelID: botVC}
	dj := inVC
	dj.RoleIDs = []string{djRole}
	tests := []struct {
		name    string
		m       music.Member
		s       music.Settings
		a       music.Action
		wantErr error
		wantMsg string
	}{
		{"listener plays", inVC, withRole, music.ActionPlay, nil, ""},
		{"listener pauses", inVC, withRole, music.ActionPause, nil, ""},
		{"listener cannot skip", inVC, withRole, music.ActionSkip, music.ErrNotDJ, "you need the DJ role <@&" + djRole + "> or the Manage Server permission to use /skip"},
		{"listener cannot skip, no role set", inVC, music.DefaultSettings(), music.ActionSkip, music.ErrNotDJ, "you need the Manage Server permission to use /skip (no DJ role is set)"},
		{"DJ skips", dj, withRole, music.ActionSkip, nil, ""},
		{"DJ role means nothing when unset", dj, music.DefaultSettings(), music.ActionVolume, music.ErrNotDJ, ""},
		{"DJ in another channel", music.Member{RoleIDs: []string{djRole}, VoiceChannelID: otherVC, BotVoiceChannelID: botVC}, withRole, music.ActionSeek, music.ErrNotInBotChannel, "join my voice channel <#" + botVC + "> to use /seek"},
		{"play needs voice when bot is idle", music.Member{}, withRole, music.ActionPlay, music.ErrNotInVoice, "join a voice channel first, then use /play"},
		{"pause with bot idle", music.Member{VoiceChannelID: otherVC}, withRole, music.ActionPause, music.ErrBotNotInVoice, "I'm not in a voice channel; use /play to start"},
		{"queue from anywhere", music.Member{}, withRole, music.ActionQueue, nil, ""},
		{"moderator stops from outside", music.Member{Permissions: music.PermissionManageGuild, BotVoiceChannelID: botVC}, withRole, music.ActionStop, nil, ""},
		{"moderator still needs channel to seek", music.Member{Permissions: music.PermissionManageGuild, BotVoiceChannelID: botVC}, withRole, music.ActionSeek, music.ErrNotInBotChannel, ""},
		{"DJ role cannot leave from outside", music.Member{RoleIDs: []string{djRole}, BotVoiceChannelID: botVC}, withRole, music.ActionLeave, music.ErrNotInBotChannel, ""},
		{"settings by DJ from anywhere", music.Member{RoleIDs: []string{djRole}}, withRole, music.ActionSettings, nil, ""},
		{"settings by listener", inVC, withRole, music.ActionSettings, music.ErrNotDJ, ""},
		{"all permission bits", music.Member{Permissions: ^uint64(0), VoiceChannelID: botVC, BotVoiceChannelID: botVC}, withRole, music.ActionClear, nil, ""},
		{"zero action refused", inVC, withRole, music.Action(0), music.ErrUnknownAction, "that action is not available"},
		{"unknown action refused", dj, withRole, music.Action(200), music.ErrUnknownAction, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := music.Authorize(tt.m, tt.s, tt.a)
			checkErr(t, err, tt.wantErr)
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Fatalf("message = %q, want %q", err.Error(), tt.wantMsg)
			}
		})
	}
}

func TestActionString(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range allActions {
		s := a.String()
		if s == "" || strings.HasPrefix(s, "Action(") || seen[s] {
			t.Errorf("action %d has name %q", a, s)
		}
		seen[s] = true
	}
	if got := music.Action(0).String(); got != "Action(0)" {
		t.Errorf("Action(0).String() = %q", got)
	}
	if got := (music.ActionSettings + 1).String(); got != fmt.Sprintf("Action(%d)", music.ActionSettings+1) {
		t.Errorf("an action was added without updating allActions: %q", got)
	}
}
