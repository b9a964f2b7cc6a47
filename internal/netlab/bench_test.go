package netlab_test

import (
	"testing"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

// BenchmarkNewAndClose builds and removes a whole lab: what every end-to-end test pays.
func BenchmarkNewAndClose(b *testing.B) {
	testkit.NeedRoot(b)
	for b.Loop() {
		l, err := netlab.New(netlab.Options{Servers: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
