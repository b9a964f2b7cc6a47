package config

import "fmt"

// ifnameProblem says why Linux (net/core/dev.c dev_valid_name) or uplinkd
// would refuse s as an interface name, or returns "" when s is fine.
func ifnameProblem(s string) string {
	switch {
	case s == "":
		return "it is empty"
	case len(s) > 15:
		return fmt.Sprintf("it is %d bytes long; Linux allows at most 15", len(s))
	case s == "." || s == "..":
		return "Linux does not allow . or .."
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '/', ':':
			return fmt.Sprintf("Linux does not allow %q in a name", c)
		case ' ', '\t', '\n', '\v', '\f', '\r':
			return "Linux does not allow whitespace in a name"
		case 0:
			return "Linux does not allow a NUL byte in a name"
		case '"', '\\':
			return fmt.Sprintf("uplinkd cannot match %q in its nftables table", c)
		}
		if c := s[i]; c < ' ' || c >= 0x7f {
			return "uplinkd accepts only printable ASCII in an interface name"
		}
	}
	return ""
}
