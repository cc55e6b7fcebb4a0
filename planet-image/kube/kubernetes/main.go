// kube: one multi-call binary for the Kubernetes node and control-plane
// components, built from the k8s.io/kubernetes Go module (see ../README.md).
//
// The component is chosen by the program name (a symlink kubelet -> kube) or,
// when invoked as "kube", by the first argument: `kube kubelet --version`.
// Each branch is the body of the upstream cmd/<component>/main.go. planet runs
// the control plane's three and the node's two together, one process each
// (kube-control-plane, kube-node: together.go).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"

	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubectl's auth plugins
	_ "time/tzdata"                             // CronJob time zones (apiserver, controller-manager)
)

func server(newCommand func() *cobra.Command) func() int {
	return func() int { return cli.Run(newCommand()) }
}

var components = map[string]func() int{
	"kube-apiserver":          server(apiserver.NewAPIServerCommand),
	"kube-controller-manager": server(controllermanager.NewControllerManagerCommand),
	"kube-scheduler": server(func() *cobra.Command {
		return scheduler.NewSchedulerCommand() // no out-of-tree plugins
	}),
	"kube-proxy": server(proxy.NewProxyCommand),
	"kubelet": server(func() *cobra.Command {
		return kubelet.NewKubeletCommand(context.Background())
	}),
	"kubectl": func() int {
		logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) // nolint:errcheck
		if err := cli.RunNoErrOutput(kubectlcmd.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
		}
		return 0
	},
}

func main() {
	name := filepath.Base(os.Args[0])
	if !known(name) && len(os.Args) > 1 {
		// `kube kubelet ...`: drop our own name so that the component sees
		// the argv it would have as its own binary (kubectl reads os.Args).
		name = os.Args[1]
		os.Args = os.Args[1:]
	}
	if _, ok := groups[name]; ok {
		os.Exit(together(name, os.Args[1:]))
	}
	run, ok := components[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "usage: kube COMPONENT [ARGS...], or run it as a symlink named COMPONENT\ncomponents: %s, %s\n", names(components), names(groups))
		os.Exit(2)
	}
	os.Exit(run())
}

func known(name string) bool {
	_, component := components[name]
	_, group := groups[name]
	return component || group
}
