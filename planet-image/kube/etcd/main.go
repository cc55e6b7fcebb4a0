// etcd: the body of etcd's own main (go.etcd.io/etcd/v3, whose go.mod
// replaces its sibling modules with local paths and so cannot be built as a
// dependency). etcdctl needs no wrapper: its main package is built straight
// from go.etcd.io/etcd/etcdctl/v3 (a `tool` of this module).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
