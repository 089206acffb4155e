// CoreDNS for the CI cluster with only the plugins its Corefile uses (.ci/setup-k8s.sh), which
// keeps the build to a fraction of the full plugin set. No forward plugin: the cluster answers
// its own names and sends no query anywhere else.
package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() { coremain.Run() }
