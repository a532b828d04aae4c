//go:build linux && (386 || amd64 || arm || arm64 || loong64 || riscv64)

package kernelpath

// scmTsOptID is SCM_TS_OPT_ID (Linux 6.13+), which golang.org/x/sys does not
// define yet: its asm-generic number, used by these architectures.
const scmTsOptID = 81
