"""A local emulator of the Azure IoT Hub service REST API (api-version 2021-04-12).

from reconciler.emulator.iothub import IotHubConfig, create_app
app = create_app(IotHubConfig(hub_name="myhub"))   # Starlette; admin under /_emulator
connection_string = app.state.emulator.connection_string()
"""

from reconciler.emulator.iothub.app import create_app, served
from reconciler.emulator.iothub.config import IotHubConfig

__all__ = ["IotHubConfig", "create_app", "served"]
