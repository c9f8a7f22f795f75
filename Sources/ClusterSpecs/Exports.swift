// What every user of the spec model also reads: JSON values (rendered objects, API responses)
// and the YAML reader with locations. They are modules of their own so that the Kubernetes
// client needs neither the spec model nor its rules.
@_exported import JSON
@_exported import SpecYAML
