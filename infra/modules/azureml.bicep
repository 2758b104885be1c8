// The optional Azure ML side (main.bicep's azureMl parameter): the training pipeline's publisher
// identity and, with createWorkspace, a workspace with its own storage and key vault and a CPU
// cluster that scales to zero and runs as that identity. The identity's one grant, Storage Blob
// Data Contributor on the models container only, is made by main.bicep (container-role.bicep).

param location string
param tags object = {}

@description('The user-assigned identity the compute cluster publishes with.')
param identityName string

@description('Also create a workspace and its cluster; false: an existing workspace is used.')
param createWorkspace bool

param workspaceName string
param workspaceStorageName string
param keyVaultName string

@description('The Application Insights component the workspace reports to (in this group).')
param applicationInsightsName string

@description('The cluster, as named in conversion/azureml/compute.yml and pipeline.yml.')
param computeName string = 'cpu-training'

param vmSize string = 'Standard_D4s_v3'

@allowed([
  'Dedicated'
  'LowPriority'
])
param vmPriority string = 'LowPriority'

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: tags
}

// Azure ML keeps code snapshots, logs and outputs here; it needs shared-key access.
resource workspaceStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = if (createWorkspace) {
  name: workspaceStorageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = if (createWorkspace) {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
  }
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' = if (createWorkspace) {
  name: workspaceName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    friendlyName: 'MNIST training'
    storageAccount: workspaceStorage.id
    keyVault: keyVault.id
    applicationInsights: appInsights.id
    publicNetworkAccess: 'Enabled'
  }
}

resource compute 'Microsoft.MachineLearningServices/workspaces/computes@2024-04-01' = if (createWorkspace) {
  parent: workspace
  name: computeName
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    computeType: 'AmlCompute'
    properties: {
      vmSize: vmSize
      vmPriority: vmPriority
      osType: 'Linux'
      scaleSettings: {
        minNodeCount: 0 // no node, no cost, while no job runs
        maxNodeCount: 1
        nodeIdleTimeBeforeScaleDown: 'PT5M'
      }
    }
  }
}

output identityId string = identity.id
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
output workspaceName string = createWorkspace ? workspace.name : ''
