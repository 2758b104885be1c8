// Grants one principal one data-plane role on one blob container only (not on the account's
// other containers).

@description('The storage account that holds the container (in this resource group).')
param storageAccountName string

@description('The container the role applies to.')
param containerName string

@description('Object (principal) ID of the identity that gets the role.')
param principalId string

@description('Built-in role definition ID (GUID).')
param roleDefinitionId string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName

  resource blobService 'blobServices' existing = {
    name: 'default'

    resource container 'containers' existing = {
      name: containerName
    }
  }
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage::blobService::container.id, principalId, roleDefinitionId)
  scope: storage::blobService::container
  properties: {
    principalId: principalId
    // A managed identity made in the same deployment: the type lets the assignment go through
    // before the identity has replicated through Entra ID.
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
  }
}

output id string = assignment.id
