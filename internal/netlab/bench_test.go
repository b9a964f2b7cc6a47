package netlab

import (
	"os"
	"testing"
)

// BenchmarkNewAndClose builds and removes a whole lab: what every end-to-end test pays.
func BenchmarkNewAndClose(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip(SkipReason)
	}
	for b.Loop() {
		l, err := New(Options{Servers: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
