// Package music holds Ensemble's domain rules: tracks, the bounded queue and
// what "next track" means under each loop mode, volume, guild settings, the
// loop/autoplay exclusion, the DJ rule, snowflake validation, /play query
// validation and the time formats users see.
//
// Everything here is pure: no I/O, no clocks, no goroutines, no global state,
// and only the standard library (imports_test.go enforces it). The guild and
// session actors own the state and call these functions to decide; keeping the
// decisions here is what lets them be covered by table and fuzz tests instead
// of cluster tests.
//
// # Positions
//
// Users see 1-based positions: position 1 is the next track to play. The
// playing track is not in the Queue; the session owns it and passes it to
// [Queue.Next] and [Queue.Skip], which apply the loop mode.
//
// # DJ rule
//
// [Authorize] is the single place that decides who may do what. "DJ" means the
// member has the guild's DJ role, or the Manage Server or Administrator
// permission. With no DJ role configured, only Manage Server/Administrator
// count as DJ: the rule stays strict rather than opening DJ actions to all.
//
//	action                          who            voice channel
//	------------------------------  -------------  --------------------------------------
//	queue, nowplaying               everyone       not needed
//	play                            everyone       the bot's channel; any channel if the
//	                                               bot is not connected (it joins yours)
//	pause, resume                   everyone       the bot's channel
//	skip, stop, clear, seek,        DJ             the bot's channel
//	volume, loop, shuffle, remove,
//	move, autoplay, leave
//	settings                        DJ             not needed
//
// Members with Manage Server or Administrator may also stop and leave from
// outside the bot's channel, so a moderator can silence the bot without
// joining it.
package music
