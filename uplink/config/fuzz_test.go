package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Parse never panics, and every error it returns is a *Error naming the file.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.toml")
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add([]byte("[defaults]\nmax_loss = nan\n"))
	f.Add([]byte("[[uplink]]\nname = \"a\"\ninterface = \"..\"\n[[uplink]]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		const path = "fuzz.toml"
		cfg, err := Parse(path, src)
		if err == nil {
			if cfg == nil || len(cfg.Uplinks) == 0 {
				t.Fatalf("no error and no uplinks: %+v", cfg)
			}
			return
		}
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			var ce *Error
			if !errors.As(e, &ce) || ce.File != path {
				t.Fatalf("error %q (%T) is not a *config.Error naming %s", e, e, path)
			}
		}
	})
}
