# Rules every rendered manifest must meet, in conftest's convention (package
# main, deny rules; one document as input). CI runs them on both overlays:
#   kubectl kustomize deploy/k8s/overlays/production | conftest test --policy deploy/policy -
package main

import rego.v1

workload_kinds := {"Deployment", "StatefulSet", "DaemonSet", "Job"}

pod_spec := input.spec.template.spec if workload_kinds[input.kind]

containers contains container if {
	some container in pod_spec.containers
}

containers contains container if {
	some container in pod_spec.initContainers
}

name := sprintf("%s/%s", [input.kind, input.metadata.name])

deny contains msg if {
	pod_spec
	not pod_spec.securityContext.runAsNonRoot
	msg := sprintf("%s: the pod must set securityContext.runAsNonRoot", [name])
}

deny contains msg if {
	pod_spec
	object.get(pod_spec, "enableServiceLinks", true) != false
	msg := sprintf("%s: enableServiceLinks must be false (service links leak variables into settings)", [name])
}

deny contains msg if {
	pod_spec
	object.get(pod_spec, "automountServiceAccountToken", true) != false
	msg := sprintf("%s: automountServiceAccountToken must be false", [name])
}

deny contains msg if {
	some container in containers
	not container.securityContext.readOnlyRootFilesystem
	msg := sprintf("%s: container %s must have a read-only root file system", [name, container.name])
}

deny contains msg if {
	some container in containers
	object.get(object.get(container, "securityContext", {}), "allowPrivilegeEscalation", true) != false
	msg := sprintf("%s: container %s must set allowPrivilegeEscalation: false", [name, container.name])
}

deny contains msg if {
	some container in containers
	not "ALL" in container.securityContext.capabilities.drop
	msg := sprintf("%s: container %s must drop ALL capabilities", [name, container.name])
}

deny contains msg if {
	some container in containers
	not container.resources.requests.cpu
	msg := sprintf("%s: container %s needs a CPU request", [name, container.name])
}

deny contains msg if {
	some container in containers
	not container.resources.limits.memory
	msg := sprintf("%s: container %s needs a memory limit", [name, container.name])
}

deny contains msg if {
	some container in containers
	not pinned(container.image)
	msg := sprintf("%s: container %s image %s must be pinned by tag or digest, not latest", [name, container.name, container.image])
}

deny contains msg if {
	input.kind in {"Deployment", "StatefulSet", "DaemonSet"}
	some container in pod_spec.containers
	not container.livenessProbe
	msg := sprintf("%s: container %s needs a liveness probe", [name, container.name])
}

deny contains msg if {
	input.kind in {"Deployment", "StatefulSet", "DaemonSet"}
	some container in pod_spec.containers
	not container.readinessProbe
	msg := sprintf("%s: container %s needs a readiness probe", [name, container.name])
}

pinned(image) if contains(image, "@sha256:")

pinned(image) if {
	not contains(image, "@")
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	not endswith(last, ":latest")
}
