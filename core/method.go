package core

import (
	"fmt"
	"slices"
	"strings"
)

// Method is how capsrec hooks the kernel's capability checks.
type Method string

const (
	MethodAuto       Method = "auto"
	MethodTracepoint Method = "tracepoint"
	MethodFexit      Method = "fexit"
	MethodKprobe     Method = "kprobe"
)

// MethodOf names the method of a record's method field (capsrec.h's enum
// attach_method, each named in lower case); "" when it is none.
func MethodOf(id uint8) Method {
	if int(id) < len(methodIDNames) {
		return Method(methodIDNames[id])
	}
	return ""
}

// Methods lists the concrete methods in the order auto tries them: enum
// attach_method's.
var Methods = func() []Method {
	var l []Method
	for _, n := range methodIDNames {
		if n != "" {
			l = append(l, Method(n))
		}
	}
	return l
}()

// MethodChoices is what --attach takes: "auto, tracepoint, fexit or kprobe".
func MethodChoices() string {
	names := []string{string(MethodAuto)}
	for _, m := range Methods {
		names = append(names, string(m))
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// ParseMethod accepts auto or one of Methods.
func ParseMethod(s string) (Method, error) {
	m := Method(strings.ToLower(s))
	if m == MethodAuto || slices.Contains(Methods, m) {
		return m, nil
	}
	return "", fmt.Errorf("unknown attach method %q (want %s)", s, MethodChoices())
}
