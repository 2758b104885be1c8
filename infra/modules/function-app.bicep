// The function app on the Flex Consumption plan (FC1): Python 3.13, deployed from a blob
// container with the app's managed identity, every connection identity-based.
// functionAppConfig.runtime picks the interpreter; from Python 3.13 the Functions Python runtime
// that runs on it is the package azure-functions-runtime, pinned in requirements.txt with the app
// (runtime version control), so the platform does not change it under the app.
// On Flex Consumption the runtime lives in functionAppConfig, so FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION are not app settings (the platform refuses them).

param name string
param planName string
param location string
param tags object = {}

@description('Resource ID of the user-assigned identity the app runs as.')
param identityId string

@description('Client ID of that identity (the __clientId of every identity-based connection).')
param identityClientId string

@description('Name of the Functions host storage account (AzureWebJobsStorage).')
param hostStorageAccountName string

@description('URL of the blob container the plan deploys the package from.')
param deploymentContainerUrl string

param applicationInsightsConnectionString string

@description('Blob endpoint of the models storage account (connection MODELS_STORAGE).')
param modelsBlobEndpoint string

@description('docs/contracts.md section 3.')
param modelsContainerName string
param modelRefreshSeconds string
param promotionMinAccuracy string
param promotionMaxRegression string

@secure()
param modelSigningKey string

@description('FEEDBACK_CONTAINER and FEEDBACK_PER_MINUTE (contracts.md sections 2a and 3).')
param feedbackContainerName string
param feedbackPerMinute string

@description('FEEDBACK_PER_INSTANCE_PER_MINUTE and _PER_DAY: what one instance takes, whoever sends it (contracts.md section 3).')
param feedbackPerInstancePerMinute string = '600'
param feedbackPerInstancePerDay string = '20000'

@description('INFERENCE_THREADS: threads of the inference pool; empty, one per core (contracts.md section 3).')
param inferenceThreads string = ''

@description('Origins allowed to call the API from a browser (the static site).')
param allowedOrigins array

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      cors: {
        allowedOrigins: allowedOrigins
        supportCredentials: false
      }
      appSettings: [
        // The host's own storage, identity-based.
        { name: 'AzureWebJobsStorage__accountName', value: hostStorageAccountName }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
        // Telemetry, authenticated with the identity (the component refuses instrumentation keys).
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: applicationInsightsConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
        // MODELS_STORAGE in its identity-based form (contracts.md section 3): blobs only. The
        // promotion trigger is an Event Grid trigger (no storage binding): the app reads the
        // dropped blob itself, and Event Grid's retries stand in for a poison queue.
        { name: 'MODELS_STORAGE__blobServiceUri', value: modelsBlobEndpoint }
        { name: 'MODELS_STORAGE__credential', value: 'managedidentity' }
        { name: 'MODELS_STORAGE__clientId', value: identityClientId }
        { name: 'MODELS_CONTAINER', value: modelsContainerName }
        { name: 'MODEL_REFRESH_SECONDS', value: modelRefreshSeconds }
        { name: 'PROMOTION_MIN_ACCURACY', value: promotionMinAccuracy }
        { name: 'PROMOTION_MAX_REGRESSION', value: promotionMaxRegression }
        { name: 'MODEL_SIGNING_KEY', value: modelSigningKey }
        { name: 'FEEDBACK_CONTAINER', value: feedbackContainerName }
        { name: 'FEEDBACK_PER_MINUTE', value: feedbackPerMinute }
        { name: 'FEEDBACK_PER_INSTANCE_PER_MINUTE', value: feedbackPerInstancePerMinute }
        { name: 'FEEDBACK_PER_INSTANCE_PER_DAY', value: feedbackPerInstancePerDay }
        { name: 'INFERENCE_THREADS', value: inferenceThreads }
        // The host refuses bodies over 9 MiB before the app reads them (the app's own largest
        // limit is 8 MiB, for pictures); the host's default is 100 MB.
        { name: 'FUNCTIONS_REQUEST_BODY_SIZE_LIMIT', value: '9437184' }
        // For azure-identity's DefaultAzureCredential, should any code fall back to it.
        { name: 'AZURE_CLIENT_ID', value: identityClientId }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

output name string = app.name
output id string = app.id
output defaultHostName string = app.properties.defaultHostName
output url string = 'https://${app.properties.defaultHostName}'
