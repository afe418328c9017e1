// The official The Things Stack JavaScript SDK (npm `ttn-lw`, the library the Console is built
// on) against a served TTS emulator: each check is one SDK call a Console user makes. Usage:
//   node checks.js <api base URL, e.g. http://127.0.0.1:1885/api/v3> <API key> <user ID>
// Prints one JSON object per check ({"name", "ok", "error"}) and exits 1 if any failed.
'use strict'

const TtnLw = require('ttn-lw').default

const [baseURL, apiKey, userId] = process.argv.slice(2)
// The SDK matches a device's server addresses to the host names of its stack configuration.
const host = new URL(baseURL).hostname
const stack = { is: baseURL, ns: baseURL, as: baseURL, js: baseURL }
const ttn = new TtnLw(apiKey, { connectionType: 'http', stackConfig: stack, defaultUserId: userId })
const app = 'sdk-app'
const device = {
  ids: {
    device_id: 'sdk-device',
    dev_eui: '70B3D57ED00000E1',
    join_eui: '70B3D57ED0000000',
    application_ids: { application_id: app },
  },
  name: 'SDK device',
  frequency_plan_id: 'EU_863_870_TTN',
  lorawan_version: 'MAC_V1_0_3',
  lorawan_phy_version: 'PHY_V1_0_3_REV_A',
  supports_join: true,
  root_keys: { app_key: { key: '2B7E151628AED2A6ABF7158809CF4F3C' } },
  network_server_address: host,
  application_server_address: host,
  join_server_address: host,
}

function expect(condition, what) {
  if (!condition) throw new Error(what)
}

const checks = [
  ['auth info names the key and its rights', async () => {
    const info = await ttn.Auth.getAuthInfo()
    expect(info.api_key.entity_ids.user_ids.user_id === userId, 'entity')
  }],
  ['create an application', async () => {
    await ttn.Applications.create(userId, { ids: { application_id: app }, name: 'SDK app' })
  }],
  ['get an application with a selector', async () => {
    const got = await ttn.Applications.getById(app, ['name'])
    expect(got.name === 'SDK app', `name ${got.name}`)
  }],
  ['update an application', async () => {
    await ttn.Applications.updateById(app, { description: 'from the SDK' })
    const got = await ttn.Applications.getById(app, ['description'])
    expect(got.description === 'from the SDK', 'description')
  }],
  ['list applications', async () => {
    const all = await ttn.Applications.getAll({ page: 1, limit: 10 }, ['name'])
    expect(all.applications.some(a => a.ids.application_id === app), 'listed')
    expect(all.totalCount >= 1, 'total count')
  }],
  ['create a device on IS, NS, AS and JS', async () => {
    await ttn.Applications.Devices.create(app, device)
  }],
  ['get a device merged from the four registries', async () => {
    const got = await ttn.Applications.Devices.getById(app, 'sdk-device', [
      'name', 'lorawan_version', 'frequency_plan_id', 'root_keys',
    ])
    expect(got.name === 'SDK device', 'name')
    expect(got.lorawan_version === 'MAC_V1_0_3', 'lorawan_version (NS)')
    expect(got.root_keys.app_key.key === device.root_keys.app_key.key, 'app key (JS)')
  }],
  ['update a device', async () => {
    await ttn.Applications.Devices.updateById(app, 'sdk-device', { name: 'Renamed' })
    const got = await ttn.Applications.Devices.getById(app, 'sdk-device', ['name'])
    expect(got.name === 'Renamed', 'name')
  }],
  ['list devices', async () => {
    const all = await ttn.Applications.Devices.getAll(app, { page: 1, limit: 10 }, ['name'])
    expect(all.end_devices.length === 1, 'one device')
  }],
  ['create, read and delete a webhook', async () => {
    await ttn.Applications.Webhooks.create(app, {
      ids: { webhook_id: 'sdk-hook' },
      base_url: 'https://example.com/hooks',
      format: 'json',
      uplink_message: { path: '/up' },
    })
    const got = await ttn.Applications.Webhooks.getById(app, 'sdk-hook', ['base_url'])
    expect(got.base_url === 'https://example.com/hooks', 'base_url')
    await ttn.Applications.Webhooks.deleteById(app, 'sdk-hook')
  }],
  ['webhook formats and (no) templates', async () => {
    const formats = await ttn.Applications.Webhooks.getFormats()
    expect(formats.formats.json, 'json format')
    const templates = await ttn.Applications.Webhooks.listTemplates(['name'])
    expect(!templates.templates || templates.templates.length === 0, 'no templates')
  }],
  ['create, read and delete a pub/sub', async () => {
    await ttn.Applications.PubSubs.create(app, {
      ids: { pub_sub_id: 'sdk-bus' },
      format: 'json',
      nats: { server_url: 'nats://nats.example.com:4222' },
      base_topic: 'sdk',
    })
    const got = await ttn.Applications.PubSubs.getById(app, 'sdk-bus', ['base_topic'])
    expect(got.nats.server_url === 'nats://nats.example.com:4222', 'provider')
    const all = await ttn.Applications.PubSubs.getAll(app, ['base_topic'])
    expect(all.pubsubs.length === 1, 'listed')
    await ttn.Applications.PubSubs.deleteById(app, 'sdk-bus')
  }],
  ['generate a DevAddr', async () => {
    const result = await ttn.Ns.generateDevAddress()
    expect(/^[0-9A-F]{8}$/.test(result.dev_addr), `dev_addr ${result.dev_addr}`)
  }],
  ['JoinEUI prefixes', async () => {
    const result = await ttn.Js.listJoinEUIPrefixes()
    expect(Array.isArray(result.prefixes), 'prefixes')
  }],
  ['frequency plans', async () => {
    const result = await ttn.Configuration.listNsFrequencyPlans()
    expect(result.frequency_plans.some(p => p.id === 'EU_863_870_TTN'), 'EU_863_870_TTN')
  }],
  ['list users (admin)', async () => {
    const all = await ttn.Users.getAll({ page: 1, limit: 10 }, ['name'])
    expect(all.users.some(u => u.ids.user_id === userId), 'admin user')
  }],
  ['create, update and delete a gateway', async () => {
    await ttn.Gateways.create(userId, {
      ids: { gateway_id: 'sdk-gateway', eui: 'B827EBFFFE8B0E01' },
      frequency_plan_ids: ['EU_863_870_TTN'],
      gateway_server_address: host,
    })
    await ttn.Gateways.updateById('sdk-gateway', { name: 'SDK gateway' })
    const got = await ttn.Gateways.getById('sdk-gateway', ['name'])
    expect(got.name === 'SDK gateway', 'name')
    await ttn.Gateways.deleteById('sdk-gateway')
  }],
  ['delete a device from all registries', async () => {
    await ttn.Applications.Devices.deleteById(app, 'sdk-device')
    const all = await ttn.Applications.Devices.getAll(app, { page: 1, limit: 10 }, ['name'])
    expect(!all.end_devices || all.end_devices.length === 0, 'gone')
  }],
  ['delete an application', async () => {
    await ttn.Applications.deleteById(app)
  }],
]

function describe(error) {
  if (error && error.response) {
    return `HTTP ${error.response.status}: ${JSON.stringify(error.response.data).slice(0, 300)}`
  }
  if (error && error.code !== undefined && error.message) {
    return `${error.code}: ${error.message}`.slice(0, 300)
  }
  return String((error && error.message) || JSON.stringify(error)).slice(0, 300)
}

;(async () => {
  let failed = 0
  for (const [name, check] of checks) {
    try {
      await check()
      console.log(JSON.stringify({ name, ok: true }))
    } catch (error) {
      failed += 1
      console.log(JSON.stringify({ name, ok: false, error: describe(error) }))
    }
  }
  process.exit(failed ? 1 : 0)
})()
