// ctrclient: containerd's own Go client (github.com/containerd/containerd v1.7), as dockerd,
// nerdctl and most Go tools use it, driving a daemon on -address. One scenario per
// subcommand; each prints one JSON object on stdout and exits 0 when the scenario ran (the
// tests judge the JSON), 1 with the error on stderr otherwise.
//
//	ctrclient -address SOCK -ref REF pull
//	ctrclient -address SOCK -ref REF exec-tty          exec with a terminal: what `tty` prints
//	ctrclient -address SOCK -ref REF exec-delete       delete of an exec created, never started
//	ctrclient -address SOCK -ref REF userns            WithRemappedSnapshot + WithUserNamespace
//	ctrclient -address SOCK -ref REF legacy -runtime-binary B -runtime-root R
//	                                                   runtime io.containerd.runtime.v1.linux,
//	                                                   options containerd.linux.runc.RuncOptions
//	ctrclient -address SOCK -ref REF missing-runtime   options.Options{BinaryName: "no-runc"}
//	ctrclient -address SOCK -ref REF -n 10 bench       time Pull, NewContainer, NewTask, Start,
//	                                                   Wait, Delete (milliseconds per sample);
//	                                                   with -trace also every RPC each phase sent
//	                                                   (method, milliseconds: unary calls from
//	                                                   send to reply, streams from open to end)
//
// Images are pulled over plain HTTP (the tests' registry is on 127.0.0.1).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/pkg/dialer"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/containerd/remotes/docker/config"
	"github.com/containerd/containerd/runtime/linux/runctypes"
	"github.com/containerd/containerd/runtime/v2/runc/options"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

var (
	address       = flag.String("address", "/run/containerd/containerd.sock", "daemon socket")
	namespace     = flag.String("namespace", "goclient", "namespace")
	ref           = flag.String("ref", "", "image reference (plain HTTP registry)")
	id            = flag.String("id", "", "container id (default: derived from the scenario)")
	runtimeBinary = flag.String("runtime-binary", "runc", "legacy: RuncOptions.Runtime")
	runtimeRoot   = flag.String("runtime-root", "", "legacy: RuncOptions.RuntimeRoot")
	hostID        = flag.Uint("host-id", 200000, "userns: host uid/gid of container root")
	samples       = flag.Int("n", 5, "bench: samples")
	trace         = flag.Bool("trace", false, "bench: also report every RPC of each phase")
)

func main() {
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: ctrclient [flags] pull|exec-tty|exec-delete|userns|legacy|missing-runtime|bench")
		os.Exit(2)
	}
	opts := []containerd.ClientOpt{containerd.WithTimeout(10 * time.Second)}
	if *trace {
		// containerd.New's own dial options, plus the tracer
		opts = append(opts, containerd.WithDialOpts([]grpc.DialOption{
			grpc.WithBlock(),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.FailOnNonTempDialError(true),
			grpc.WithContextDialer(dialer.ContextDialer),
			grpc.WithReturnConnectionError(),
			grpc.WithChainUnaryInterceptor(rpcs.unary),
			grpc.WithChainStreamInterceptor(rpcs.stream),
		}))
	}
	client, err := containerd.New(*address, opts...)
	if err != nil {
		fail(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), *namespace), 2*time.Minute)
	defer cancel()
	scenarios := map[string]func(context.Context, *containerd.Client) (any, error){
		"pull": func(ctx context.Context, c *containerd.Client) (any, error) {
			img, err := pull(ctx, c)
			if err != nil {
				return nil, err
			}
			return map[string]string{"name": img.Name(), "digest": img.Target().Digest.String()}, nil
		},
		"exec-tty":        execTTY,
		"exec-delete":     execDelete,
		"userns":          userns,
		"legacy":          legacy,
		"missing-runtime": missingRuntime,
		"bench":           bench,
	}
	fn, ok := scenarios[flag.Arg(0)]
	if !ok {
		fail(fmt.Errorf("unknown scenario %q", flag.Arg(0)))
	}
	out, err := fn(ctx, client)
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func containerID(def string) string {
	if *id != "" {
		return *id
	}
	return def
}

func pull(ctx context.Context, c *containerd.Client) (containerd.Image, error) {
	hosts := config.ConfigureHosts(ctx, config.HostOptions{DefaultScheme: "http"})
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: hosts})
	return c.Pull(ctx, *ref, containerd.WithPullUnpack, containerd.WithResolver(resolver))
}

// image: the image if the daemon has it, else pulled.
func image(ctx context.Context, c *containerd.Client) (containerd.Image, error) {
	img, err := c.GetImage(ctx, *ref)
	if err == nil {
		if ok, _ := img.IsUnpacked(ctx, containerd.DefaultSnapshotter); ok {
			return img, nil
		}
	}
	return pull(ctx, c)
}

// sleeper: a container running `sleep 300`, its task started; cleanup kills and deletes both.
func sleeper(ctx context.Context, c *containerd.Client, name string) (containerd.Task, func(), error) {
	img, err := image(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	ctr, err := c.NewContainer(ctx, name, containerd.WithNewSnapshot(name+"-snap", img),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "300")))
	if err != nil {
		return nil, nil, err
	}
	removeContainer := func() { _ = ctr.Delete(context.WithoutCancel(ctx), containerd.WithSnapshotCleanup) }
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		removeContainer()
		return nil, nil, err
	}
	cleanup := func() {
		bg := context.WithoutCancel(ctx)
		_, _ = task.Delete(bg, containerd.WithProcessKill)
		removeContainer()
	}
	if err := task.Start(ctx); err != nil {
		cleanup()
		return nil, nil, err
	}
	return task, cleanup, nil
}

func processSpec(ctx context.Context, task containerd.Task, args ...string) (*specs.Process, error) {
	spec, err := task.Spec(ctx)
	if err != nil {
		return nil, err
	}
	p := *spec.Process
	p.Args = args
	return &p, nil
}

// lockedBuffer: the copy goroutine of cio writes while we read at the end.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func execTTY(ctx context.Context, c *containerd.Client) (any, error) {
	task, cleanup, err := sleeper(ctx, c, containerID("exec-tty"))
	if err != nil {
		return nil, err
	}
	defer cleanup()
	// the container's own process has terminal false; only the request asks for a tty
	pspec, err := processSpec(ctx, task, "sh", "-c", "busybox tty; busybox stty size")
	if err != nil {
		return nil, err
	}
	var out lockedBuffer
	proc, err := task.Exec(ctx, "tty1", pspec, cio.NewCreator(cio.WithStreams(nil, &out, nil), cio.WithTerminal))
	if err != nil {
		return nil, err
	}
	defer proc.Delete(context.WithoutCancel(ctx))
	exitCh, err := proc.Wait(ctx)
	if err != nil {
		return nil, err
	}
	if err := proc.Start(ctx); err != nil {
		return nil, err
	}
	st := <-exitCh
	code, _, err := st.Result()
	if err != nil {
		return nil, err
	}
	proc.IO().Wait()
	return map[string]any{"exit_status": code, "output": out.String(), "spec_terminal": pspec.Terminal}, nil
}

func execDelete(ctx context.Context, c *containerd.Client) (any, error) {
	task, cleanup, err := sleeper(ctx, c, containerID("exec-delete"))
	if err != nil {
		return nil, err
	}
	defer cleanup()
	pspec, err := processSpec(ctx, task, "true")
	if err != nil {
		return nil, err
	}
	proc, err := task.Exec(ctx, "never-started", pspec, cio.NullIO)
	if err != nil {
		return nil, err
	}
	st, err := proc.Delete(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]any{"exit_status": st.ExitCode()}, nil
}

func userns(ctx context.Context, c *containerd.Client) (any, error) {
	img, err := image(ctx, c)
	if err != nil {
		return nil, err
	}
	name := containerID("userns")
	host := uint32(*hostID)
	mapping := []specs.LinuxIDMapping{{ContainerID: 0, HostID: host, Size: 65536}}
	ctr, err := c.NewContainer(ctx, name, containerd.WithRemappedSnapshot(name+"-snap", img, host, host),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithUserNamespace(mapping, mapping),
			oci.WithProcessArgs("sh", "-c", "busybox id -u; cat /proc/self/uid_map; busybox stat -c %u /bin/busybox")))
	if err != nil {
		return nil, err
	}
	defer ctr.Delete(context.WithoutCancel(ctx), containerd.WithSnapshotCleanup)
	return runToEnd(ctx, ctr)
}

// runToEnd: NewTask with stdout captured, Start, Wait, Delete; exit status and output.
func runToEnd(ctx context.Context, ctr containerd.Container) (map[string]any, error) {
	var out lockedBuffer
	task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, &out)))
	if err != nil {
		return nil, err
	}
	defer task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return nil, err
	}
	if err := task.Start(ctx); err != nil {
		return nil, err
	}
	code, _, err := (<-exitCh).Result()
	if err != nil {
		return nil, err
	}
	task.IO().Wait()
	return map[string]any{"exit_status": code, "output": out.String()}, nil
}

func legacy(ctx context.Context, c *containerd.Client) (any, error) {
	img, err := image(ctx, c)
	if err != nil {
		return nil, err
	}
	name := containerID("legacy")
	opts := &runctypes.RuncOptions{Runtime: *runtimeBinary, RuntimeRoot: *runtimeRoot}
	ctr, err := c.NewContainer(ctx, name, containerd.WithNewSnapshot(name+"-snap", img),
		containerd.WithRuntime("io.containerd.runtime.v1.linux", opts),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sh", "-c", "echo legacy; sleep 1")))
	if err != nil {
		return nil, err
	}
	defer ctr.Delete(context.WithoutCancel(ctx), containerd.WithSnapshotCleanup)
	res, err := runToEnd(ctx, ctr)
	if err != nil {
		return map[string]any{"error": err.Error()}, nil
	}
	return res, nil
}

func missingRuntime(ctx context.Context, c *containerd.Client) (any, error) {
	img, err := image(ctx, c)
	if err != nil {
		return nil, err
	}
	name := containerID("missing-runtime")
	ctr, err := c.NewContainer(ctx, name, containerd.WithNewSnapshot(name+"-snap", img),
		containerd.WithRuntime("io.containerd.runc.v2", &options.Options{BinaryName: "no-runc"}),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("true")))
	if err != nil {
		return nil, err
	}
	defer ctr.Delete(context.WithoutCancel(ctx), containerd.WithSnapshotCleanup)
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err == nil {
		_, _ = task.Delete(ctx, containerd.WithProcessKill)
		return map[string]any{"error": ""}, nil
	}
	return map[string]any{"error": err.Error()}, nil
}

// rpcLog: the RPCs sent since the last take(), with their durations (-trace).
type rpcLog struct {
	mu   sync.Mutex
	rpcs []rpcTime
}

type rpcTime struct {
	Method string  `json:"method"`
	Ms     float64 `json:"ms"`
}

var rpcs = &rpcLog{}

func (l *rpcLog) add(method string, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rpcs = append(l.rpcs, rpcTime{method, float64(time.Since(start).Microseconds()) / 1000})
}

func (l *rpcLog) take() []rpcTime {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.rpcs
	l.rpcs = nil
	return out
}

func (l *rpcLog) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	l.add(method, start)
	return err
}

// stream: timed from open to the end of the stream (io.EOF or an error on RecvMsg).
func (l *rpcLog) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	start := time.Now()
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		l.add(method, start)
		return nil, err
	}
	return &timedStream{ClientStream: s, log: l, method: method, start: start}, nil
}

type timedStream struct {
	grpc.ClientStream
	log    *rpcLog
	method string
	start  time.Time
	once   sync.Once
}

func (s *timedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		s.once.Do(func() { s.log.add(s.method, s.start) })
	}
	return err
}

// bench: per sample, remove the image (and its content), then time each client call.
func bench(ctx context.Context, c *containerd.Client) (any, error) {
	phases := []string{"Pull", "NewContainer", "NewTask", "Start", "Wait", "Delete"}
	times := map[string][]float64{}
	var traced []map[string][]rpcTime // per sample: phase -> RPCs
	for i := 0; i < *samples; i++ {
		sample := map[string][]rpcTime{}
		_ = c.ImageService().Delete(ctx, *ref, images.SynchronousDelete())
		name := fmt.Sprintf("bench-%d-%d", os.Getpid(), i)
		lap := time.Now()
		mark := func(phase string) {
			now := time.Now()
			times[phase] = append(times[phase], float64(now.Sub(lap).Microseconds())/1000)
			lap = now
			sample[phase] = rpcs.take()
		}
		rpcs.take() // the image delete above is no phase
		img, err := pull(ctx, c)
		if err != nil {
			return nil, err
		}
		mark("Pull")
		ctr, err := c.NewContainer(ctx, name, containerd.WithNewSnapshot(name+"-snap", img),
			containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("true")))
		if err != nil {
			return nil, err
		}
		mark("NewContainer")
		task, err := ctr.NewTask(ctx, cio.NullIO)
		if err != nil {
			return nil, err
		}
		mark("NewTask")
		exitCh, err := task.Wait(ctx)
		if err != nil {
			return nil, err
		}
		if err := task.Start(ctx); err != nil {
			return nil, err
		}
		mark("Start")
		if code, _, err := (<-exitCh).Result(); err != nil || code != 0 {
			return nil, fmt.Errorf("bench task: exit %d, %v", code, err)
		}
		mark("Wait")
		if _, err := task.Delete(ctx); err != nil {
			return nil, err
		}
		if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			return nil, err
		}
		mark("Delete")
		traced = append(traced, sample)
	}
	out := map[string]any{"phases": phases, "ms": times}
	if *trace {
		out["rpcs"] = traced
	}
	return out, nil
}
