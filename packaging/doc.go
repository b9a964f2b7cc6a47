// Package packaging holds what builds the .deb and .rpm (nfpm.yaml, build.sh, the maintainer
// scripts, man pages, shell completions) and the tests that keep them consistent with the code
// and the README; it has no code of its own.
package packaging
