// Several components in one process, as k3s runs them: each separate process
// of the multi-call binary runs every component's package init and maps its
// own copy of the binary's pages (80-100 MiB each); together they share them.
//
//	kube-control-plane kube-apiserver ARGS... --- kube-controller-manager ARGS... --- kube-scheduler ARGS...
//	kube-node kubelet ARGS... --- kube-proxy ARGS...
//
// A component starts once cobra has parsed the flags of the one before it
// (they set klog's global flags and feature gates; kubelet parses its own
// later, in its run); beside kube-apiserver, the others (the controller-manager,
// the scheduler) also wait until it is ready for them, since they exit when it
// is not. The process ends with the first component that returns: systemd
// restarts them together.
package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/cli/globalflag"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/component-base/version/verflag"
	"k8s.io/klog/v2"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// separator ends one component's arguments.
const separator = "---"

// groups: the programs that run components together, and which they may run.
var groups = map[string]map[string]func() *cobra.Command{
	"kube-control-plane": {
		"kube-apiserver":          apiserver.NewAPIServerCommand,
		"kube-controller-manager": controllermanager.NewControllerManagerCommand,
		"kube-scheduler":          schedulerCommand,
	},
	"kube-node": {
		"kubelet":    func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) },
		"kube-proxy": proxy.NewProxyCommand,
	},
}

type section struct {
	name string
	args []string
}

// sections splits `NAME ARGS... --- NAME ARGS...` into its components.
func sections(group string, args []string) ([]section, error) {
	known := groups[group]
	var out []section
	seen := map[string]bool{}
	for len(args) > 0 {
		name := args[0]
		if _, ok := known[name]; !ok {
			return nil, fmt.Errorf("%q is not a component %s runs (%s)", name, group, names(known))
		}
		if seen[name] {
			return nil, fmt.Errorf("%s is given twice", name)
		}
		seen[name] = true
		end := len(args)
		for i, a := range args {
			if a == separator {
				end = i
				break
			}
		}
		out = append(out, section{name, args[1:end]})
		args = args[min(end+1, len(args)):]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no component given (%s)", names(known))
	}
	return out, nil
}

func names[T any](m map[string]T) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

type exit struct {
	name string
	err  error
}

func (e exit) code() int {
	if e.err != nil {
		klog.ErrorS(e.err, "component failed", "component", e.name)
		return 1
	}
	klog.InfoS("component exited", "component", e.name)
	return 0
}

func together(group string, args []string) int {
	parts, err := sections(group, args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\nusage: %s COMPONENT ARGS... [%s COMPONENT ARGS...]...\n", group, err, group, separator)
		return 2
	}
	// Each component applies its logging options; the same options again are no change.
	logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
	logs.InitLogs()
	defer logs.FlushLogs()

	exits := make(chan exit, len(parts))
	apiserver := slices.ContainsFunc(parts, func(p section) bool { return p.name == "kube-apiserver" })
	for _, p := range parts {
		cmd := groups[group][p.name]()
		cmd.SetArgs(p.args)
		cmd.SilenceUsage = true
		cmd.SetGlobalNormalizationFunc(cliflag.WordSepNormalizeFunc)
		parsed := make(chan struct{})
		pre := cmd.PersistentPreRunE
		cmd.PersistentPreRunE = func(c *cobra.Command, a []string) error {
			defer close(parsed)
			if pre != nil {
				return pre(c, a)
			}
			return nil
		}
		if kubeconfig := flagValue(p.args, "kubeconfig"); apiserver && kubeconfig != "" {
			if e, ended := waitReady(p.name, kubeconfig, exits); ended {
				return e.code()
			}
		}
		go func() { exits <- exit{p.name, cmd.Execute()} }()
		select {
		case <-parsed:
		case e := <-exits: // it failed on its flags
			return e.code()
		}
	}
	return (<-exits).code()
}

// flagValue: the value of --NAME in args, or "".
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		} else if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// waitReady waits until kube-apiserver answers /readyz with 200 to the
// component's own credentials (its --kubeconfig), or a component ends. Before
// that the apiserver may answer but still deny it (RBAC not bootstrapped yet).
func waitReady(who, kubeconfig string, exits <-chan exit) (exit, bool) {
	start := time.Now()
	var last string
	for i := 0; ; i++ {
		select {
		case e := <-exits:
			return e, true
		default:
		}
		if last = readyz(kubeconfig); last == "" {
			klog.InfoS("kube-apiserver is ready", "starting", who, "waited", time.Since(start).Round(time.Millisecond))
			return exit{}, false
		}
		if i%30 == 29 {
			klog.InfoS("waiting for kube-apiserver", "starting", who, "last", last)
		}
		time.Sleep(time.Second)
	}
}

// readyz: "" when the apiserver is ready, else why not.
func readyz(kubeconfig string) string {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err.Error()
	}
	cfg.Timeout = 5 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err.Error()
	}
	code := 0
	res := client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(context.Background()).StatusCode(&code)
	if err := res.Error(); err != nil {
		return err.Error()
	}
	if code != http.StatusOK {
		return fmt.Sprintf("/readyz: %d", code)
	}
	return ""
}

// schedulerCommand is upstream's kube-scheduler command except for one thing:
// upstream's installs a signal handler of its own, and a process may install
// only one (kube-apiserver's). Here the scheduler stops with the process.
func schedulerCommand() *cobra.Command {
	opts := scheduleroptions.NewOptions()
	cmd := &cobra.Command{
		Use: "kube-scheduler",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return opts.ComponentGlobalsRegistry.Set()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			verflag.PrintAndExitIfRequested()
			fg := opts.ComponentGlobalsRegistry.FeatureGateFor(basecompatibility.DefaultKubeComponent)
			if err := logsapi.ValidateAndApply(opts.Logs, fg); err != nil {
				return err
			}
			cliflag.PrintFlags(cmd.Flags())
			ctx := context.Background()
			cc, sched, err := scheduler.Setup(ctx, opts)
			if err != nil {
				return err
			}
			return scheduler.Run(ctx, cc, sched)
		},
		Args: cobra.NoArgs,
	}
	nfs := opts.Flags
	verflag.AddFlags(nfs.FlagSet("global"))
	globalflag.AddGlobalFlags(nfs.FlagSet("global"), cmd.Name(), logs.SkipLoggingConfigurationFlags())
	for _, f := range nfs.FlagSets {
		cmd.Flags().AddFlagSet(f)
	}
	return cmd
}
