// The Event Grid system topic of the models storage account: the source of the BlobCreated events
// that drive the promoter. Its subscription is in event-subscription.bicep, deployed once the
// function code (and with it the Event Grid extension's webhook key, eventgrid_extension) exists.

param name string
param location string
param tags object = {}

@description('The models storage account (in this resource group).')
param storageAccountName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output name string = topic.name
output id string = topic.id
