"""`reconciler import` from an Azure IoT Hub: read the registry, write IoT Hub manifests."""
