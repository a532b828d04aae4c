// Command stamp prints version.String(); the version test builds it with the
// documented -X flags.
package main

import (
	"fmt"

	"github.com/stackgap/stackgap/internal/version"
)

func main() { fmt.Print(version.String()) }
