// rpcproxy: a unix-socket proxy in front of a gRPC daemon that logs every RPC a client we
// did not write (dockerd) sends: one JSON line per finished call with its path, its start
// (Unix seconds) and its duration in milliseconds, from the client's HEADERS frame to the
// server's frame that ends the stream (or RST_STREAM). Bytes pass through unchanged; only
// the client's header blocks are decoded (HPACK), to read :path.
//
//	rpcproxy -listen PROXY_SOCK -upstream DAEMON_SOCK -out rpcs.jsonl
//
// Used by bench/docker.py --rpcs. h2c over a unix socket, as containerd's clients speak it.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/net/http2/hpack"
)

var (
	listen   = flag.String("listen", "", "socket to listen on")
	upstream = flag.String("upstream", "", "daemon socket")
	out      = flag.String("out", "", "log file")
)

type call struct {
	path  string
	start time.Time
}

type conn struct {
	mu    sync.Mutex
	calls map[uint32]call
}

var (
	logMu sync.Mutex
	enc   *json.Encoder
	seq   int
)

func main() {
	flag.Parse()
	f, err := os.Create(*out)
	if err != nil {
		panic(err)
	}
	enc = json.NewEncoder(f)
	os.Remove(*listen)
	l, err := net.Listen("unix", *listen)
	if err != nil {
		panic(err)
	}
	cid := 0
	for { // runs until killed
		c, err := l.Accept()
		if err != nil {
			panic(err)
		}
		cid++
		go serve(c, cid)
	}
}

func serve(c net.Conn, id int) {
	u, err := net.Dial("unix", *upstream)
	if err != nil {
		c.Close()
		return
	}
	st := &conn{calls: map[uint32]call{}}
	go func() { pump(u, c, st, id, false); c.Close(); u.Close() }()
	pump(c, u, st, id, true)
	c.Close()
	u.Close()
}

// pump copies src to dst frame by frame; fromClient: decode request headers.
func pump(src, dst net.Conn, st *conn, id int, fromClient bool) {
	r := bufio.NewReaderSize(src, 1<<16)
	dec := hpack.NewDecoder(4096, nil)
	if fromClient {
		preface := make([]byte, 24)
		if _, err := io.ReadFull(r, preface); err != nil {
			return
		}
		if _, err := dst.Write(preface); err != nil {
			return
		}
	}
	hdr := make([]byte, 9)
	var block []byte
	var blockStream uint32
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		typ, flags := hdr[3], hdr[4]
		stream := binary.BigEndian.Uint32(hdr[5:]) & 0x7fffffff
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return
		}
		now := time.Now()
		if fromClient && (typ == 1 || typ == 9) {
			p := payload
			if typ == 1 {
				if flags&0x8 != 0 && len(p) > 0 {
					pad := int(p[0])
					p = p[1 : len(p)-pad]
				}
				if flags&0x20 != 0 {
					p = p[5:]
				}
				block = append([]byte(nil), p...)
				blockStream = stream
			} else {
				block = append(block, p...)
			}
			if flags&0x4 != 0 { // END_HEADERS
				path := ""
				fields, _ := dec.DecodeFull(block)
				for _, hf := range fields {
					if hf.Name == ":path" {
						path = hf.Value
					}
				}
				if path != "" {
					st.mu.Lock()
					st.calls[blockStream] = call{path, now}
					st.mu.Unlock()
				}
			}
		}
		if !fromClient && ((typ == 1 || typ == 0) && flags&0x1 != 0 || typ == 3) {
			st.mu.Lock()
			c, ok := st.calls[stream]
			delete(st.calls, stream)
			st.mu.Unlock()
			if ok {
				logMu.Lock()
				seq++
				enc.Encode(map[string]any{"seq": seq, "conn": id, "path": c.path, "start": float64(c.start.UnixNano()) / 1e9,
					"ms": float64(now.Sub(c.start).Microseconds()) / 1000})
				logMu.Unlock()
			}
		}
		if _, err := dst.Write(append(append([]byte(nil), hdr...), payload...)); err != nil {
			return
		}
	}
}
