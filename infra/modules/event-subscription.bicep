// Delivers the models account's BlobCreated events under incoming/ to the Event Grid trigger
// `promote_model` of the function app (its webhook /runtime/webhooks/eventgrid). The app takes the
// blob's name from the event's subject and reads the blob itself.
//
// The webhook needs the `eventgrid_extension` system key, which the Functions host creates only
// once code with an Event Grid trigger is running: this template therefore runs after `azd deploy`
// (infra/hooks/event_subscription.py, the api service's postdeploy hook), or from main.bicep when
// EVENT_SUBSCRIPTION_ENABLED=true on a later `azd provision`. Event Grid validates the endpoint
// when the subscription is created, which also needs the code deployed.
// A delivery the function fails (an error, or no answer) is retried by Event Grid under the
// retryPolicy below; the app's five-minute reconcile_incoming timer catches up on anything left.
// Deployable on its own: az deployment group create -g <rg> -f infra/modules/event-subscription.bicep
//   -p systemTopicName=<topic> functionAppName=<app>

@description('The system topic of the models storage account (event-grid-topic.bicep).')
param systemTopicName string

@description('The function app that runs `promote_model`.')
param functionAppName string

@description('The models container (MODELS_CONTAINER).')
param modelsContainerName string = 'models'

@description('The Event Grid trigger function (its Python function name).')
param functionName string = 'promote_model'

param subscriptionName string = 'incoming-to-promoter'

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// https://learn.microsoft.com/azure/azure-functions/event-grid-how-tos: the Event Grid trigger's
// webhook and its system key, eventgrid_extension.
var eventGridExtensionKey = listKeys('${functionApp.id}/host/default', '2023-12-01').systemKeys.eventgrid_extension
var webhookUrl = 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/eventgrid?functionName=${functionName}&code=${eventGridExtensionKey}'

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
