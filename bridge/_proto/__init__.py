"""Generated stubs of proto/edidub/bridge/v1/bridge.proto (python -m bridge.protogen)."""
