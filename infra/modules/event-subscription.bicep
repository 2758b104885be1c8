// Delivers the models account's BlobCreated events under incoming/ to the blob extension's webhook
// of the function app, where the `promote_model` blob trigger (source EventGrid) picks them up.
//
// The webhook needs the `blobs_extension` system key, which the Functions host creates only once
// code with an Event Grid blob trigger is running: this template therefore runs after `azd deploy`
// (infra/hooks/event_subscription.py, the api service's postdeploy hook), or from main.bicep when
// EVENT_SUBSCRIPTION_ENABLED=true on a later `azd provision`. Event Grid validates the endpoint
// when the subscription is created, which also needs the code deployed.
// Deployable on its own: az deployment group create -g <rg> -f infra/modules/event-subscription.bicep
//   -p systemTopicName=<topic> functionAppName=<app>

@description('The system topic of the models storage account (event-grid-topic.bicep).')
param systemTopicName string

@description('The function app that runs `promote_model`.')
param functionAppName string

@description('The models container (MODELS_CONTAINER).')
param modelsContainerName string = 'models'

@description('The blob trigger function: Host.Functions.<python function name>.')
param functionName string = 'promote_model'

param subscriptionName string = 'incoming-to-promoter'

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

var blobsExtensionKey = listKeys('${functionApp.id}/host/default', '2023-12-01').systemKeys.blobs_extension
var webhookUrl = 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${blobsExtensionKey}'

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: subscriptionName
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: webhookUrl
        // One model file per delivery: each promotion takes a lease and runs the gate on its own.
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      // Only the drop zone: the promoter's own writes (versions/, current.json, rejected/,
      // audit/) must not trigger it.
      // Any file name: the promoter refuses a non-.onnx drop with a reason in rejected/.
      subjectBeginsWith: '/blobServices/default/containers/${modelsContainerName}/blobs/incoming/'
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output name string = subscription.name
