// Package helm holds no code: this module only pins helm.sh/helm/v3 and its
// dependencies (go.mod, go.sum). build.sh builds the helm program straight
// from the dependency:
//
//	go build helm.sh/helm/v3/cmd/helm
//
// helm's own go.mod has no replace directives (v3.22.0).
package helm
