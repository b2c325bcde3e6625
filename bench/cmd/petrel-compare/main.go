// Command petrel-compare is the arithmetic of bench/compare.sh: it reads the manifest the
// scenarios declared and the JSON results of petrel-load, and writes the comparison table
// (markdown and JSON) with the median of each metric per target and the ratio Petrel/anchor.
//
// Usage:
//
//	petrel-compare table -manifest FILE -raw DIR -md FILE -json FILE [-profiles DIR]
//	petrel-compare port       (prints a free port on 127.0.0.1)
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: petrel-compare table -manifest FILE -raw DIR -md FILE -json FILE [-profiles DIR] | port")
		return 2
	}
	var err error
	switch args[0] {
	case "port":
		err = freePort(stdout)
	case "table":
		err = tableCmd(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "petrel-compare: unknown command %q\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "petrel-compare:", err)
		return 1
	}
	return 0
}
