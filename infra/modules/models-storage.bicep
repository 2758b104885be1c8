// The model store of docs/contracts.md section 2: one blob container (incoming/, versions/,
// current.json, rejected/, audit/). Its BlobCreated events feed the promoter through Event Grid.
// Beside it, the feedback container of section 2a (people's corrections), whose items a
// lifecycle rule deletes after feedbackRetentionDays.
// Shared keys are disabled: the app, the publisher and the deployer all use Entra ID.

param name string
param location string
param tags object = {}

@description('The models container (app setting MODELS_CONTAINER).')
param containerName string = 'models'

@description('The feedback container (app setting FEEDBACK_CONTAINER).')
param feedbackContainerName string = 'feedback'

@description('Days a correction is kept before the lifecycle rule deletes it (docs/contracts.md section 2a).')
@minValue(1)
@maxValue(3650)
param feedbackRetentionDays int = 180

@description('Days a deleted blob or container can be restored (soft delete).')
@minValue(1)
@maxValue(365)
param deleteRetentionDays int = 7

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
  }
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}

resource feedbackContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: feedbackContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Corrections are kept for a while to train the next versions, not for ever: training that
// wants them longer exports them (python -m conversion.feedback export).
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-old-feedback'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${feedbackContainerName}/items/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: feedbackRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    feedbackContainer
  ]
}

output name string = storage.name
output id string = storage.id
output containerName string = container.name
output feedbackContainerName string = feedbackContainer.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
