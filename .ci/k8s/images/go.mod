module nemo-run-k8s/ci/k8s/images

go 1.24.0
