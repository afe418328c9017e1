"""`reconciler import`: bring existing resources under management by writing manifests for them.

Provider-neutral parts live here: the report of what could not be represented, YAML output in
the manifest language's spellings, and the output tree that is written to a temporary directory
and moved into place (so an error or Ctrl-C never leaves a half-written directory). Reading a
provider's live state or export files and mapping it to manifests is the provider's part
(`reconciler.providers.tts.importing`).
"""
