// Package containerd holds no code: this module only pins
// github.com/containerd/containerd/v2 and its dependencies (go.mod, go.sum)
// and names the two programs built from it as tools. build.sh builds them
// straight from the dependency:
//
//	go build -tags 'no_btrfs ...' github.com/containerd/containerd/v2/cmd/containerd
//
// containerd's own go.mod has no replace or exclude directives (v2.4.2).
package containerd
