// Command gobin is built by the catalog tests: a Go binary whose build
// information names a known dependency.
package main

import (
	"fmt"

	packageurl "github.com/package-url/packageurl-go"
)

func main() {
	fmt.Println(packageurl.NewPackageURL("golang", "", "gobin", "v0.0.0", nil, "").ToString())
}
