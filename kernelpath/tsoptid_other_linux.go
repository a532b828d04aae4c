//go:build linux && !(386 || amd64 || arm || arm64 || loong64 || riscv64)

package kernelpath

// scmTsOptID is 0 where SCM_TS_OPT_ID has an architecture-specific number not
// known here: stamped UDP sends then use the kernel's key counter.
const scmTsOptID = 0
