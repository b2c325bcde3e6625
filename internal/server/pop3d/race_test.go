//go:build race

package pop3d

const raceEnabled = true
