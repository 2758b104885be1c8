// MNIST digit recognition on Azure: the Functions app (Flex Consumption), its model storage and
// the Event Grid source of its promotion trigger, monitoring, and the static site.
// Deployed by azd (azure.yaml); see infra/README.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; also hashed into every resource name.')
param environmentName string

@minLength(1)
@description('Region of everything but the static site. It must offer the Flex Consumption plan.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Static Web Apps region (only a few are offered; the content is served globally).')
@allowed([
  'westus2'
  'centralus'
  'eastus2'
  'westeurope'
  'eastasia'
])
param staticWebAppLocation string = 'westeurope'

@allowed([
  'Free'
  'Standard'
])
param staticWebAppSku string = 'Free'

@description('Object ID of whoever runs azd (AZURE_PRINCIPAL_ID): gets Storage Blob Data Contributor on the models storage, to publish models. Empty: no such grant.')
param principalId string = ''

@description('Resource group name; default rg-<environmentName>.')
param resourceGroupName string = ''

// The settings of docs/contracts.md section 3 (strings: they become app settings verbatim).
@description('MODELS_CONTAINER')
param modelsContainerName string = 'models'

@description('MODEL_REFRESH_SECONDS')
param modelRefreshSeconds string = '10'

@description('PROMOTION_MIN_ACCURACY')
param promotionMinAccuracy string = '0.98'

@description('PROMOTION_MAX_REGRESSION')
param promotionMaxRegression string = '0.005'

@description('FEEDBACK_CONTAINER')
param feedbackContainerName string = 'feedback'

@description('FEEDBACK_PER_MINUTE')
param feedbackPerMinute string = '10'

@description('Days a correction is kept in the feedback container before it is deleted.')
@minValue(1)
@maxValue(3650)
param feedbackRetentionDays int = 180

@secure()
@description('MODEL_SIGNING_KEY: when set, only signed model files are promoted. Empty: no signature check.')
param modelSigningKey string = ''

@description('Most instances the Flex Consumption plan scales the app out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('More browser origins allowed to call the API (e.g. a custom domain of the site).')
param extraAllowedOrigins array = []

@description('Also deploy the Event Grid subscription from here. Only once the code is deployed (its webhook key exists); azd up does it in the api postdeploy hook instead.')
param eventSubscriptionEnabled bool = false

@description('The Azure ML training pipeline (conversion/azureml/). none: nothing (azd up stays cheap); identity: only its publisher identity, with Storage Blob Data Contributor on the models container, for an existing workspace; workspace: also a workspace and a CPU cluster that scales to zero, running as that identity.')
@allowed([
  'none'
  'identity'
  'workspace'
])
param azureMl string = 'none'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${resourceToken}'

// Built-in roles.
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-func-${resourceToken}'
    location: location
    tags: tags
  }
}

module hostStorage 'modules/host-storage.bicep' = {
  name: 'host-storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package'
  }
}

module modelsStorage 'modules/models-storage.bicep' = {
  name: 'models-storage'
  scope: rg
  params: {
    name: 'stmodels${resourceToken}'
    location: location
    tags: tags
    containerName: modelsContainerName
    feedbackContainerName: feedbackContainerName
    feedbackRetentionDays: feedbackRetentionDays
  }
}

// The app's identity: blob leases, writes and deletes (host storage, the promoter, the feedback
// endpoint's writes to the feedback container); queues on the host storage only (the host's own).
// The models account needs no queue role: the promotion trigger is an Event Grid trigger, whose
// failed deliveries Event Grid retries itself (event-subscription.bicep's retryPolicy).
module hostStorageRoles 'modules/storage-roles.bicep' = {
  name: 'host-storage-roles'
  scope: rg
  params: {
    storageAccountName: hostStorage.outputs.name
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionIds: [
      storageBlobDataOwner
      storageQueueDataContributor
    ]
  }
}

module modelsStorageRoles 'modules/storage-roles.bicep' = {
  name: 'models-storage-roles'
  scope: rg
  params: {
    storageAccountName: modelsStorage.outputs.name
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionIds: [
      storageBlobDataOwner
    ]
  }
}

module monitoringRoles 'modules/monitoring-roles.bicep' = {
  name: 'monitoring-roles'
  scope: rg
  params: {
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
  }
}

// Whoever deploys may publish models (python -m conversion.publish --account-url ...).
module publisherRoles 'modules/storage-roles.bicep' = if (!empty(principalId)) {
  name: 'publisher-roles'
  scope: rg
  params: {
    storageAccountName: modelsStorage.outputs.name
    principalId: principalId
    roleDefinitionIds: [
      storageBlobDataContributor
    ]
  }
}

// The Azure ML pipeline's publisher: it may write into the models container and nowhere else.
module azureml 'modules/azureml.bicep' = if (azureMl != 'none') {
  name: 'azureml'
  scope: rg
  params: {
    location: location
    tags: tags
    identityName: 'id-train-${resourceToken}'
    createWorkspace: azureMl == 'workspace'
    workspaceName: 'mlw-${resourceToken}'
    workspaceStorageName: 'stml${resourceToken}'
    keyVaultName: 'kv-ml-${resourceToken}'
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module trainingPublisherRole 'modules/container-role.bicep' = if (azureMl != 'none') {
  name: 'training-publisher-role'
  scope: rg
  params: {
    storageAccountName: modelsStorage.outputs.name
    containerName: modelsStorage.outputs.containerName
    principalId: azureMl != 'none' ? azureml.outputs.identityPrincipalId : ''
    roleDefinitionId: storageBlobDataContributor
  }
}

module web 'modules/static-web-app.bicep' = {
  name: 'static-web-app'
  scope: rg
  params: {
    name: 'stapp-${resourceToken}'
    location: staticWebAppLocation
    sku: staticWebAppSku
    tags: tags
  }
}

module api 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostStorageAccountName: hostStorage.outputs.name
    deploymentContainerUrl: hostStorage.outputs.deploymentContainerUrl
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    modelsBlobEndpoint: modelsStorage.outputs.blobEndpoint
    modelsContainerName: modelsStorage.outputs.containerName
    modelRefreshSeconds: modelRefreshSeconds
    promotionMinAccuracy: promotionMinAccuracy
    promotionMaxRegression: promotionMaxRegression
    modelSigningKey: modelSigningKey
    feedbackContainerName: modelsStorage.outputs.feedbackContainerName
    feedbackPerMinute: feedbackPerMinute
    allowedOrigins: concat([web.outputs.url], extraAllowedOrigins)
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: 2048
  }
  // The app must be able to read its package and reach its storage from its first start.
  dependsOn: [
    hostStorageRoles
    modelsStorageRoles
    monitoringRoles
  ]
}

module eventGridTopic 'modules/event-grid-topic.bicep' = {
  name: 'event-grid-topic'
  scope: rg
  params: {
    name: 'evgt-models-${resourceToken}'
    location: location
    tags: tags
    storageAccountName: modelsStorage.outputs.name
  }
}

module eventSubscription 'modules/event-subscription.bicep' = if (eventSubscriptionEnabled) {
  name: 'event-subscription'
  scope: rg
  params: {
    systemTopicName: eventGridTopic.outputs.name
    functionAppName: api.outputs.name
    modelsContainerName: modelsStorage.outputs.containerName
  }
}

// Read by azd (and written to .azure/<env>/.env), the hooks and the workflows.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output API_BASE_URL string = '${api.outputs.url}/api'
output AZURE_STATIC_WEB_APP_NAME string = web.outputs.name
output WEB_URL string = web.outputs.url
output MODELS_STORAGE_ACCOUNT_NAME string = modelsStorage.outputs.name
output MODELS_STORAGE_ACCOUNT_URL string = modelsStorage.outputs.blobEndpoint
output MODELS_CONTAINER string = modelsStorage.outputs.containerName
output FEEDBACK_CONTAINER string = modelsStorage.outputs.feedbackContainerName
output EVENT_GRID_SYSTEM_TOPIC_NAME string = eventGridTopic.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output AZUREML_WORKSPACE string = azureMl == 'workspace' ? azureml.outputs.workspaceName : ''
output AZUREML_RESOURCE_GROUP string = rg.name
output AZUREML_IDENTITY_CLIENT_ID string = azureMl != 'none' ? azureml.outputs.identityClientId : ''
output AZUREML_IDENTITY_ID string = azureMl != 'none' ? azureml.outputs.identityId : ''
