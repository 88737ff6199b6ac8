package core

import (
	"fmt"
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
// attach_method); "" when it is none.
func MethodOf(id uint8) Method {
	switch id {
	case MethodIDTracepoint:
		return MethodTracepoint
	case MethodIDFexit:
		return MethodFexit
	case MethodIDKprobe:
		return MethodKprobe
	}
	return ""
}

// Methods lists the concrete methods in the order auto tries them.
var Methods = []Method{MethodTracepoint, MethodFexit, MethodKprobe}

// ParseMethod accepts auto, tracepoint, fexit or kprobe.
func ParseMethod(s string) (Method, error) {
	switch m := Method(strings.ToLower(s)); m {
	case MethodAuto, MethodTracepoint, MethodFexit, MethodKprobe:
		return m, nil
	}
	return "", fmt.Errorf("unknown attach method %q (want auto, tracepoint, fexit or kprobe)", s)
}
