// Package systemd holds the files systemd reads (uplinkd.service) and the tests that check
// them; it has no code of its own.
package systemd
