package main

import (
	"fmt"
	"io"
	"net"
)

// freePort asks the kernel for a free port on 127.0.0.1. The port is free when this returns
// and almost certainly still free a moment later, when a server binds it; compare.sh also
// never hands out one port twice.
func freePort(w io.Writer) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	_, err = fmt.Fprintln(w, l.Addr().(*net.TCPAddr).Port)
	return err
}
