package uplink

import "testing"

func TestProbeMethodsParseOnceIntoNameAndPort(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Method
		ok   bool
	}{
		{"icmp", Method{Name: MethodICMP}, true},
		{"tcp", Method{Name: MethodTCP, Port: 80}, true},
		{"tcp:443", Method{Name: MethodTCP, Port: 443}, true},
		{"tcp:0", Method{}, false},
		{"tcp:070", Method{}, false},
		{"tcp:70000", Method{}, false},
		{"tcp:", Method{}, false},
		{"icmp:1", Method{}, false},
		{"http", Method{Name: MethodHTTP, Port: 80}, true},
		{"http:8080", Method{Name: MethodHTTP, Port: 8080}, true},
		{"https", Method{Name: MethodHTTPS, Port: 443}, true},
		{"https:8443", Method{Name: MethodHTTPS, Port: 8443}, true},
		{"dns", Method{Name: MethodDNS, Port: 53}, true},
		{"dns:5353", Method{Name: MethodDNS, Port: 5353}, true},
		{"dns:x", Method{}, false},
		{"https:", Method{}, false},
		{"http3", Method{}, false},
		{"ftp:21", Method{}, false},
	} {
		got, err := ParseMethod(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseMethod(%q) = %+v, %v; want %+v, ok=%v", c.in, got, err, c.want, c.ok)
		}
		if c.ok && got.String() != c.in && !(c.in == "tcp" && got.String() == "tcp") {
			t.Errorf("%q prints as %q", c.in, got.String())
		}
	}
}
