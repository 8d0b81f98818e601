{{- define "ociregistry.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "ociregistry.labels" -}}
app.kubernetes.io/name: ociregistry
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
