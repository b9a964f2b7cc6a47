package connmark

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// planFrom turns fuzz bytes into a plan, a few bytes per field, so that the
// fuzzer explores plans near the valid ones as well as broken ones.
func planFrom(data []byte) Plan {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	str := func() string {
		n := int(next() % 18)
		if n > len(data) {
			n = len(data)
		}
		s := string(data[:n])
		data = data[n:]
		return s
	}
	var p Plan
	for range int(next() % 3) {
		p.LANInterfaces = append(p.LANInterfaces, str())
	}
	for range int(next() % 6) {
		u := Uplink{Name: str(), Interface: str(), Mark: uint32(next()) << 8, Weight: int(next()) * 4}
		flags := next()
		u.Live, u.Eligible = flags&1 != 0, flags&2 != 0
		if flags&4 != 0 {
			u.Mark |= uint32(next())
		}
		for range int(flags>>4) % 3 {
			if next()%2 == 0 {
				u.Addrs = append(u.Addrs, netip.AddrFrom4([4]byte{198, 51, 100, next()}))
			} else {
				u.Addrs = append(u.Addrs, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: next()}))
			}
		}
		p.Uplinks = append(p.Uplinks, u)
	}
	for range int(next() % 4) {
		s := Service{Name: str(), Proto: []string{"", "tcp", "udp", "icmp", "sctp"}[next()%5], Mark: uint32(next()) << 8, Block: next()%2 == 0}
		for range int(next() % 3) {
			s.DPorts = append(s.DPorts, PortRange{From: uint16(next()) * 100, To: uint16(next()) * 200})
		}
		for range int(next() % 3) {
			bits := int(next() % 33)
			s.Dst = append(s.Dst, netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, next()}), bits))
		}
		if next()%2 == 0 {
			s.Src = append(s.Src, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 4: next()}), int(next()%129)))
		}
		if next()%3 == 0 {
			s.InIface = str()
		}
		p.Services = append(p.Services, s)
	}
	p.Affinity = next()%2 == 0
	return p
}

var (
	chainDef  = regexp.MustCompile(`(?m)^\tchain ([a-z_0-9]+) \{$`)
	setDef    = regexp.MustCompile(`(?m)^\t(?:set|map) ([a-z_0-9]+) \{$`)
	chainRef  = regexp.MustCompile(`goto ([A-Za-z_0-9]+)`)
	setRef    = regexp.MustCompile(`@([A-Za-z_0-9]+)`)
	quotedStr = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
)

// Render and Validate never panic. A plan that validates renders to text nft(8) can load:
// braces balance, every chain jumped to and set looked up is defined, quoted strings
// carry no quote, backslash or newline; and its kernel expressions build.
func FuzzRender(f *testing.F) {
	f.Add([]byte{1, 4, 'l', 'a', 'n', '0', 2, 4, 'i', 's', 'p', '1', 4, 'w', 'a', 'n', '1', 1, 3, 3, 0, 4, 'i', 's', 'p', '2', 4, 'w', 'a', 'n', '2', 2, 1, 3})
	f.Add([]byte{0, 5, 3, 'a', 'b', 'c', 2, 'w', '1', 7, 9, 0x17, 0, 1, 3, 's', 'v', 'c', 1, 7, 0, 2, 5, 6, 7, 8, 1, 24, 9, 0, 1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := planFrom(data)
		text := Render(p)
		if err := p.Validate(); err != nil {
			if !strings.HasPrefix(text, "# connmark: ") || strings.Count(text, "\n") != 1 {
				t.Fatalf("invalid plan (%v) rendered as %q", err, text)
			}
			return
		}
		unquoted := quotedStr.ReplaceAllString(text, "STRING")
		if strings.Count(unquoted, "{") != strings.Count(unquoted, "}") {
			t.Fatalf("unbalanced braces:\n%s", text)
		}
		chains, sets := map[string]bool{}, map[string]bool{}
		for _, m := range chainDef.FindAllStringSubmatch(text, -1) {
			chains[m[1]] = true
		}
		for _, m := range setDef.FindAllStringSubmatch(text, -1) {
			sets[m[1]] = true
		}
		for _, m := range chainRef.FindAllStringSubmatch(text, -1) {
			if !chains[m[1]] {
				t.Fatalf("goto %s: no such chain:\n%s", m[1], text)
			}
		}
		for _, m := range setRef.FindAllStringSubmatch(unquoted, -1) {
			if !sets[m[1]] {
				t.Fatalf("@%s: no such set:\n%s", m[1], text)
			}
		}
		for _, m := range quotedStr.FindAllStringSubmatch(text, -1) {
			if strings.ContainsAny(m[1], "\"\\\n") {
				t.Fatalf("quoted string %q cannot be loaded:\n%s", m[1], text)
			}
		}
		if strings.Contains(unquoted, "\"") {
			t.Fatalf("stray quote:\n%s", text)
		}
		if _, err := measure(build(p)); err != nil {
			t.Fatalf("kernel expressions: %v", err)
		}
	})
}
