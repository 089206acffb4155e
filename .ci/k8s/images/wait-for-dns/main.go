// The init container the training operator puts on PyTorchJob workers, as its default alpine one
// does with nslookup: wait until the master's name resolves, then exit 0; exit 1 after MAX tries.
// Usage: wait-for-dns NAME [MAX_TRIES]   (2 s between tries)
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: wait-for-dns NAME [MAX_TRIES]")
		os.Exit(2)
	}
	name, tries := os.Args[1], 100
	if len(os.Args) > 2 {
		if n, err := strconv.Atoi(os.Args[2]); err == nil && n > 0 {
			tries = n
		}
	}
	for i := 1; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		cancel()
		if err == nil {
			fmt.Printf("%s resolves to %v\n", name, addrs)
			return
		}
		if i >= tries {
			fmt.Fprintf(os.Stderr, "%s did not resolve after %d tries: %v\n", name, i, err)
			os.Exit(1)
		}
		fmt.Printf("waiting for master %s: %v\n", name, err)
		time.Sleep(2 * time.Second)
	}
}
