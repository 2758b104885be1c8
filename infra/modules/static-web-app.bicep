// Azure Static Web Apps for static-web/. No build and no managed functions: the site calls the
// function app directly (CORS on the app, the API origin in the site's CSP), written in at deploy
// time by infra/hooks/stage_site.py. See infra/README.md for why the app is not a linked backend.

param name string

@description('Static Web Apps is offered in a few regions only; the content is served globally.')
@allowed([
  'westus2'
  'centralus'
  'eastus2'
  'westeurope'
  'eastasia'
])
param location string

param tags object = {}

@allowed([
  'Free'
  'Standard'
])
param sku string = 'Free'

resource site 'Microsoft.Web/staticSites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'web' })
  sku: {
    name: sku
    tier: sku
  }
  properties: {
    // Deployed by azd (the SWA CLI with the deployment token), not from a linked repository.
    provider: 'Custom'
  }
}

output name string = site.name
output defaultHostname string = site.properties.defaultHostname
output url string = 'https://${site.properties.defaultHostname}'
