// Uplink decoder for the soil probes: 2 bytes moisture (0.1 %), 2 bytes temperature (0.01 °C).
function decodeUplink(input) {
  var bytes = input.bytes;
  if (bytes.length < 4) {
    return { errors: ["payload too short"] };
  }
  var moisture = ((bytes[0] << 8) | bytes[1]) / 10;
  var raw = (bytes[2] << 8) | bytes[3];
  var temperature = (raw > 0x7fff ? raw - 0x10000 : raw) / 100;
  return { data: { moisture: moisture, temperature: temperature } };
}
