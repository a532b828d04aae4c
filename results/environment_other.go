//go:build !linux

package results

import (
	"fmt"
	"runtime"
)

// CollectEnvironment describes this host. It is only implemented on Linux;
// elsewhere it returns an error saying so.
func CollectEnvironment(iface string) (Environment, error) {
	return Environment{}, fmt.Errorf("collect environment: not supported on %s/%s", runtime.GOOS, runtime.GOARCH)
}
