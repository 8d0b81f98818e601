{{/* The chart part of object names. */}}
{{- define "ociregistry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: fullnameOverride, or <release>-<name> unless the release already holds it. */}}
{{- define "ociregistry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "ociregistry.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ociregistry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The labels selectors use: they never change over the release's life. */}}
{{- define "ociregistry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ociregistry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ociregistry.labels" -}}
helm.sh/chart: {{ include "ociregistry.chart" . }}
{{ include "ociregistry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ociregistry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ociregistry.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the admin token, when there is one. */}}
{{- define "ociregistry.adminSecretName" -}}
{{- if .Values.adminApi.token.existingSecret -}}
{{- .Values.adminApi.token.existingSecret -}}
{{- else if .Values.adminApi.token.value -}}
{{- printf "%s-admin" (include "ociregistry.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "ociregistry.imagePath" -}}
{{- .Values.serverConfig.configuration.imagePath | default "/var/lib/ociregistry" -}}
{{- end -}}
