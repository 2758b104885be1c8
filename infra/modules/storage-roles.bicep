// Grants one principal a set of data-plane roles on one storage account.

@description('The storage account the roles apply to (in this resource group).')
param storageAccountName string

@description('Object (principal) ID of the identity that gets the roles.')
param principalId string

@description('ServicePrincipal for managed identities; leave empty for a person or an unknown kind.')
@allowed([
  ''
  'ServicePrincipal'
  'User'
  'Group'
])
param principalType string = ''

@description('Built-in role definition IDs (GUIDs) to assign.')
param roleDefinitionIds array

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleDefinitionIds: {
    name: guid(storage.id, principalId, roleId)
    scope: storage
    // principalType only when known: it lets a just-created identity get its roles before it
    // has replicated through Entra ID, but a wrong one fails the assignment.
    properties: empty(principalType) ? {
      principalId: principalId
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    } : {
      principalId: principalId
      principalType: principalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    }
  }
]
