"""reconciler: infrastructure-as-code for LoRaWAN fleets on The Things Stack."""

__version__ = "0.1.0"
