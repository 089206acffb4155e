//go:build tools

// The Kubeflow training operator v1 (cmd/training-operator.v1), built by .ci/k8s/build.sh.
package tools

import _ "github.com/kubeflow/training-operator/cmd/training-operator.v1"
