package music_test

import (
	"errors"
	"fmt"

	"github.com/ensemble-bot/ensemble/internal/music"
)

func ExampleQueue_Next() {
	q, _ := music.RestoreQueue(10, trs("b c"))
	current := tr("a")
	for range 4 {
		current, _ = q.Next(&current, music.LoopQueue)
		fmt.Print(current.Identifier, " ")
	}
	// Output: b c a b
}

func ExampleQueue_Skip() {
	q, _ := music.RestoreQueue(10, trs("b c d"))
	next, _, _ := q.Skip(ptr(tr("a")), 2, music.LoopQueue)
	fmt.Println("now playing", next.Identifier, "then", ids(q.Tracks()))
	// Output: now playing c then d a b
}

func ExampleAuthorize() {
	s, _ := music.NewSettings("300000000000000001", 100, "")
	listener := music.Member{VoiceChannelID: "400000000000000001", BotVoiceChannelID: "400000000000000001"}
	fmt.Println(music.Authorize(listener, s, music.ActionPause))
	err := music.Authorize(listener, s, music.ActionSkip)
	fmt.Println(errors.Is(err, music.ErrNotDJ), err)
	// Output:
	// <nil>
	// true you need the DJ role <@&300000000000000001> or the Manage Server permission to use /skip
}

func ExampleValidateQuery() {
	for _, in := range []string{"lofi beats", "https://youtu.be/dQw4w9WgXcQ", "file:///etc/passwd"} {
		q, err := music.ValidateQuery(in)
		fmt.Printf("%q %v\n", q.Identifier, err)
	}
	// Output:
	// "ytsearch:lofi beats" <nil>
	// "https://youtu.be/dQw4w9WgXcQ" <nil>
	// "" unsupported source "file:": use an http(s) link or search words (to search text with a colon, put a space after it)
}
