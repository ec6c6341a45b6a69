module pycontainerd.test/rpcproxy

go 1.25.0

require golang.org/x/net v0.38.0
