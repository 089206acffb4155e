{{/*
The submitter's rules: exactly the Kubernetes API calls the KubernetesExecutor makes, and no
others. This is the single place they are written; tests/helm/test_rbac_coverage.py checks them
against the calls recorded while the executor drives a job through its whole life.

  kubeflow.org pytorchjobs  create, get, list, delete          submit, state, reattach, cancel
  "" pods                   list                               find a job's pods and their phase
  "" pods/log               get                                logs (follow included)
  "" events                 list                               explain pending/failed pods
*/}}
{{- define "nemo-run-k8s.submitterRules" -}}
- apiGroups: ["kubeflow.org"]
  resources: ["pytorchjobs"]
  verbs: ["create", "get", "list", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
{{- end }}
