// crirtt times single CRI unary calls the way kubelet and critest send them (Go, grpc-go,
// the generated runtime.v1 client), one call at a time on one connection, and prints
// {"<method>": [milliseconds, ...]} as JSON. bench/cri_rtt.py runs it against pycontainerd,
// containerd's CRI plugin and a bare grpc.aio server (the floor of any Python server).
//
//	crirtt -socket /run/x.sock -n 500 -image busybox -container ID -sandbox ID Version ListImages ...
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	socket := flag.String("socket", "", "the CRI endpoint's unix socket")
	n := flag.Int("n", 500, "calls per method")
	image := flag.String("image", "", "ImageStatus's image")
	container := flag.String("container", "", "ContainerStatus's container id")
	sandbox := flag.String("sandbox", "", "PodSandboxStatus's sandbox id")
	flag.Parse()
	conn, err := grpc.NewClient("unix://"+*socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer conn.Close()
	rt := runtime.NewRuntimeServiceClient(conn)
	img := runtime.NewImageServiceClient(conn)
	calls := map[string]func(context.Context) error{
		"Version": func(ctx context.Context) error {
			_, err := rt.Version(ctx, &runtime.VersionRequest{})
			return err
		},
		"ListImages": func(ctx context.Context) error {
			_, err := img.ListImages(ctx, &runtime.ListImagesRequest{})
			return err
		},
		"ImageStatus": func(ctx context.Context) error {
			_, err := img.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: *image}})
			return err
		},
		"ListContainers": func(ctx context.Context) error {
			_, err := rt.ListContainers(ctx, &runtime.ListContainersRequest{})
			return err
		},
		"ContainerStatus": func(ctx context.Context) error {
			_, err := rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: *container})
			return err
		},
		"ListPodSandbox": func(ctx context.Context) error {
			_, err := rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
			return err
		},
		"PodSandboxStatus": func(ctx context.Context) error {
			_, err := rt.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: *sandbox})
			return err
		},
	}
	out := map[string][]float64{}
	ctx := context.Background()
	for _, method := range flag.Args() {
		call, ok := calls[method]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown method %q\n", method)
			os.Exit(2)
		}
		if err := call(ctx); err != nil { // warm-up, and a wrong id fails here, not in the figures
			fmt.Fprintf(os.Stderr, "%s: %v\n", method, err)
			os.Exit(1)
		}
		ms := make([]float64, 0, *n)
		for i := 0; i < *n; i++ {
			start := time.Now()
			if err := call(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", method, err)
				os.Exit(1)
			}
			ms = append(ms, float64(time.Since(start).Nanoseconds())/1e6)
		}
		out[method] = ms
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
