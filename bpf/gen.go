// Package bpf holds stackgap's eBPF programs: the C sources and the Go
// bindings bpf2go generates from them. The generated .go and .o files are
// committed, so building stackgap needs no clang; regenerate them with
//
//	go generate ./bpf
//
// which needs clang-19 and libbpf-dev.
package bpf

//go:generate go tool bpf2go -cc clang-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type meta -type stats -type settings Steer steer.c -- -I/usr/include/x86_64-linux-gnu
