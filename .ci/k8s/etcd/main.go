// etcd for the CI cluster, built from go.etcd.io/etcd/server/v3 (Debian's 3.4 is too old).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
